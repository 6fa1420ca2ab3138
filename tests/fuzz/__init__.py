"""Fuzz harnesses for hostile input: the request decoders and the whole request path, without sockets."""
