"""gpti2: a command-line client for the gpt-image2 image generation API."""

__version__ = "0.1.0"
