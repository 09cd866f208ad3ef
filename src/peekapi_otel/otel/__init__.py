"""The OpenTelemetry face: processor, exporter, sampler, configure, distro and framework hooks."""
