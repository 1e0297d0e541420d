"""Scripts shipped inside task definitions; stdlib only, read as package data."""
