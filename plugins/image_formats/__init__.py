"""Built-in image formats, one module per format."""
