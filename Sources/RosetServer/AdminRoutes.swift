// /admin/faults and /admin/stats: test-only controls behind their own bearer token (never an API
// key). Invariant: a wrong or missing token gets 401 and changes nothing.
import Crypto
import Foundation
import Hummingbird

struct AdminRoutes: Sendable {
    let token: String
    let faults: FaultController

    func register(_ router: Router<BasicRequestContext>) {
        router.get("/admin/faults") { request, _ in
            guard authorized(request) else { return Self.denied }
            return Self.json(faults.current.json)
        }
        router.put("/admin/faults") { request, _ in
            guard authorized(request) else { return Self.denied }
            var request = request
            let raw = try await request.collectBody(upTo: 1 << 20)
            do {
                let body = try JSONBody.decodeObject(Data(buffer: raw))
                return Self.json(try faults.merge(body).json)
            } catch let e as APIError {
                return Self.json(e.body, status: e.status)
            }
        }
        router.get("/admin/stats") { request, _ in
            guard authorized(request) else { return Self.denied }
            return Self.json(faults.stats)
        }
    }

    private func authorized(_ request: Request) -> Bool {
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer ") else { return false }
        let given = SHA256.hash(data: Data(header.dropFirst(7).utf8))
        let want = SHA256.hash(data: Data(token.utf8))
        return given == want
    }

    static var denied: Response { json(APIError(401, "UNAUTHORIZED", "bad admin token").body, status: 401) }

    static func json(_ value: Any, status: Int = 200) -> Response {
        Response(status: .init(code: status), headers: [.contentType: "application/json"],
                 body: .init(byteBuffer: ByteBuffer(bytes: JSONBody.encode(value))))
    }
}
