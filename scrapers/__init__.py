"""Collectors: each turns one platform's or file format's posts into normalised mentions."""
