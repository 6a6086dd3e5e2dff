// Per-connection NIO handlers added after HTTP decoding.
// - ConnectionCounter: one instance per connection; counts accepts for /admin/stats (proves reuse).
// - ExpectContinueHandler: answers `Expect: 100-continue` with an interim 100 at once. libcurl
//   sends that header on large PUTs and otherwise waits a full second before sending the body.
import HTTPTypes
import NIOCore
import NIOHTTPTypes

final class ConnectionCounter: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = NIOAny
    let faults: FaultController
    init(faults: FaultController) { self.faults = faults }
    func handlerAdded(context: ChannelHandlerContext) { faults.count("connectionsAccepted") }
}

final class ExpectContinueHandler: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundOut = HTTPResponsePart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if case .head(var head) = part, head.headerFields[.expect]?.lowercased() == "100-continue" {
            head.headerFields[.expect] = nil
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponse(status: .continue))), promise: nil)
            context.fireChannelRead(wrapInboundOut(.head(head)))
            return
        }
        context.fireChannelRead(data)
    }
}
