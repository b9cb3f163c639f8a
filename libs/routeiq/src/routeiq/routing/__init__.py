"""Routing: features (MiniLM embeddings, text features), learned routers and their bundles,
strategies, the routing engine, benchmark datasets and RouteLLM's evaluation metrics.

Everything here runs in numpy at inference; training code imports torch lazily.
"""
