"""inference.trace is one import for traces: the same objects as the modules that define them."""

from __future__ import annotations

import inference.trace as trace
from inference import trace_files, trace_generator, trace_models, trace_row


def test_trace_re_exports_rows_files_models_and_the_generator():
    assert trace.TraceRow is trace_row.TraceRow and trace.InvalidTraceRow is trace_row.InvalidTraceRow
    assert trace.load_trace is trace_files.load_trace and trace.TraceError is trace_files.TraceError
    assert trace.generate_trace is trace_generator.generate_trace
    assert trace.TRACE_MODELS is trace_models.TRACE_MODELS and trace.NICHES is trace_models.NICHES
    assert set(trace.__all__) <= set(dir(trace))
