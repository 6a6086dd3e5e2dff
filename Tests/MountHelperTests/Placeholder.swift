import Testing

@Test func placeholder_MountHelperTests() { #expect(Bool(true)) }
