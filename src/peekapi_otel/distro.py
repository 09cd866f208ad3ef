"""Zero-code entry points for ``opentelemetry-instrument``."""

from peekapi_otel.otel._distro import PeekApiConfigurator, PeekApiDistro, pre_instrument

__all__ = ["PeekApiConfigurator", "PeekApiDistro", "pre_instrument"]
