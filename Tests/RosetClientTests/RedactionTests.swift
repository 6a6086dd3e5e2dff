// Secrets never reach logs or errors: signature query values and the API key are replaced.
import Testing
@testable import RosetClient

@Suite struct RedactionTests {
    let r = Redaction(apiKey: "rk_live_abc123")

    @Test(arguments: [
        ("http://127.0.0.1:9/blob/o/1?expires=17&sig=abcdef0123", "abcdef0123"),
        ("https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F2025&X-Amz-Signature=f00d&X-Amz-Security-Token=tok", "f00d"),
        ("https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIAEXAMPLE%2F2025&X-Amz-Date=1", "AKIAEXAMPLE"),
        ("https://b/k?X-Amz-Security-Token=sessiontok&x=1", "sessiontok"),
        ("https://s/o?token=t0ken&signature=s1g", "t0ken"),
        ("https://s/o?token=t0ken&signature=s1g", "s1g"),
        ("https://r2/o?X-Goog-Signature=gsig", "gsig"),
    ])
    func signedURLsLoseTheirSignature(_ url: String, secret: String) {
        let out = r.url(url)
        #expect(!out.contains(secret))
        #expect(out.contains(Redaction.placeholder))
    }

    @Test func nonSecretPartsSurvive() {
        let out = r.url("http://127.0.0.1:9/blob/o/1?expires=17&sig=abc&partNumber=3")
        #expect(out == "http://127.0.0.1:9/blob/o/1?expires=17&sig=REDACTED&partNumber=3")
        #expect(r.text("nothing secret here") == "nothing secret here")
    }

    @Test func apiKeyAndBearerAreRemovedFromText() {
        #expect(!r.text("request with key rk_live_abc123 failed").contains("rk_live_abc123"))
        let bearer = r.text("Authorization: Bearer someOtherToken")
        #expect(!bearer.contains("someOtherToken") && bearer.contains("Bearer"))
        #expect(!r.text("GET http://h/x?sig=zz failed: reset").contains("sig=zz"))
    }
}
