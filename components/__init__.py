"""Components of nim-on-eks: one module per concern, composed by __main__.py."""
