"""Personal sounds: learned on the node from YAMNet embeddings, shared as sound packs."""
