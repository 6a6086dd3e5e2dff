import Testing

@Test func placeholder_RosetClientTests() { #expect(Bool(true)) }
