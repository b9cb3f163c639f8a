"""Trainer logic: data, training, evaluation, gate, tracking, bundles, announcements, worker."""
