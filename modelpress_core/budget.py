"""What one upload's checks may cost the API: CPU seconds of the checking thread and bytes inflated.

One ``InspectionBudget`` is made per request and handed to every check (zip streaming, pickle scan,
header parsing); each calls ``spend`` as it goes, so an upload that would take longer is refused
part-way, with the limit in the problem, instead of starving the API. CPU is ``time.thread_time()``
of the thread running the checks: other requests' work does not count against this one.
"""

from __future__ import annotations

import time

from modelpress_core.errors import UnsafeUpload, UploadTooLarge


class InspectionBudget:
    def __init__(self, cpu_s: float, max_bytes: int):
        self.cpu_s = cpu_s
        self.max_bytes = max_bytes
        self.inflated = 0
        self._started = time.thread_time()

    @property
    def cpu_used(self) -> float:
        return time.thread_time() - self._started

    def spend(self, inflated: int = 0) -> None:
        """Count ``inflated`` more bytes; raise when either limit is passed."""
        self.inflated += inflated
        if self.inflated > self.max_bytes:
            raise UnsafeUpload(
                f"the upload unpacks to more than {self.max_bytes} bytes (MODELPRESS_MAX_ZIP_BYTES)", detected="zip-bomb"
            )
        if self.cpu_used > self.cpu_s:
            raise UploadTooLarge(
                f"checking this upload took more than {self.cpu_s:g} CPU seconds (MODELPRESS_INSPECTION_CPU_S); "
                "send a smaller file",
                limit_cpu_s=self.cpu_s,
            )
