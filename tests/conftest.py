"""Shared across tiers."""

# authlib (imported by confluent-kafka's registry client) adds an "always" warnings filter for
# its own deprecation class when authlib.deprecate is first imported. Importing it here, before
# any test module, lets the ini `filterwarnings` entry below it take precedence.
import authlib.deprecate  # noqa: F401
