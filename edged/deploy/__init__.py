"""Remote module delivery: signed deploy messages, the on-disk module store, activation."""
