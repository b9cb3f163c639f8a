"""The `routeiq` operator CLI."""

import warnings

from authlib.deprecate import AuthlibDeprecationWarning

# confluent-kafka's schema-registry client imports authlib's httpx integration, which warns on
# import about authlib's own internals. authlib installs an "always" filter for its warning
# class when authlib.deprecate is imported, so ours must be added after that import.
warnings.filterwarnings("ignore", category=AuthlibDeprecationWarning)
