"""Schemathesis hooks of scripts/fuzz-api.

The fuzzer draws Idempotency-Key values from a small space and reuses them across different
bodies; the server rightly refuses such a reuse (422 `idempotency_key_reused`, tested in the API
tests). Here each valid key the fuzzer draws is made unique, so the run tests what each keyed
request does with its body. Keys that are invalid per the document stay as drawn, so their
rejection is still checked.
"""

import itertools
import re

import schemathesis

_VALID = re.compile(r"[!-~]{1,200}")
_counter = itertools.count()


@schemathesis.hook
def before_call(context, case, kwargs):
    # Every phase's requests pass here, the coverage phase's fixed examples too. Negative cases
    # are left alone: an edit would mark them valid again, and one that leaves a header out
    # would then send it after all.
    meta = case.meta
    if meta is not None and meta.generation.mode.is_negative:
        return
    headers = case.headers
    if headers:
        key = headers.get("Idempotency-Key")
        if isinstance(key, str) and _VALID.fullmatch(key):
            headers["Idempotency-Key"] = f"{key[:180]}-{next(_counter)}"
