"""Message-free image handling: encodings, image files, registration, overlay, pairing and stamps."""
