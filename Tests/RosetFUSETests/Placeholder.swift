import Testing

@Test func placeholder_RosetFUSETests() { #expect(Bool(true)) }
