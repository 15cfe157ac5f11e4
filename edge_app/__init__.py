"""The edge side of splitcodec: run the head, encode the split activations, send them."""
