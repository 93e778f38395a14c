"""The customer's side of the shop: sign-in by phone code (with a sandbox SMS), rate limits,
and the read queries behind the storefront pages (entrypoints/storefront renders them)."""
