"""The HTTP layer: the only package that imports Litestar. Controllers decode requests,
call ``core`` and encode answers; ``errors`` maps domain errors to problem+json."""
