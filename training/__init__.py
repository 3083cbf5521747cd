"""training — QLoRA counselor and scorer on kokoro's prompt formats, and the CPU scorer."""
