"""digits: a small handwritten-digit classifier service (numpy inference, stdlib HTTP)."""
