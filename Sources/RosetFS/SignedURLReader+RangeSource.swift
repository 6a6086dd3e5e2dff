// SignedURLReader already has the RangeSource shape: a ranged read of one node's content.
import RosetClient

extension SignedURLReader: RangeSource {}
