"""edge-variator: compress pre-trained Transformer encoders for phones."""
