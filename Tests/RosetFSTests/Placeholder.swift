import Testing

@Test func placeholder_RosetFSTests() { #expect(Bool(true)) }
