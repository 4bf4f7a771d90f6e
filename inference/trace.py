"""Production-traffic traces, one import for their callers: rows, files, models and the generator.

A trace is one row per job (inference/trace_row.py) in a JSON Lines, JSON or Parquet file
(inference/trace_files.py); a production-like one is generated from a catalog of models
(inference/trace_generator.py, inference/trace_models.py) when there is no customer data.
"""

from inference.trace_files import PARQUET_SCHEMA, TraceError, TraceFormatError, load_trace, read_trace, write_trace
from inference.trace_generator import DEFAULT_START, generate_trace
from inference.trace_models import NICHES, TRACE_MODELS, TraceModel
from inference.trace_row import (AVRO_PROVIDER, FIELDS, PROVIDER_API, PROVIDER_SELF_HOSTED, PROVIDERS, TIMESTAMPS,
                                 InvalidTraceRow, TraceRow, format_time)

__all__ = [
    "AVRO_PROVIDER", "DEFAULT_START", "FIELDS", "NICHES", "PARQUET_SCHEMA", "PROVIDERS", "PROVIDER_API",
    "PROVIDER_SELF_HOSTED", "TIMESTAMPS", "TRACE_MODELS", "InvalidTraceRow", "TraceError", "TraceFormatError",
    "TraceModel", "TraceRow", "format_time", "generate_trace", "load_trace", "read_trace", "write_trace",
]
