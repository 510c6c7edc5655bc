"""Image decoding, input discovery and labelled dataset loading."""
