"""Training data on disk, shared by every stage: JSONL reading (`jsonl`), chat-template encoding
(`chat`) and preference pairs (`pairs`)."""
