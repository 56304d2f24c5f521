"""The SavedModel: signatures, warm-up records, versioned atomic publishing."""
