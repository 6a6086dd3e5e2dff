import Testing

@Test func placeholder_RosetServerTests() { #expect(Bool(true)) }
