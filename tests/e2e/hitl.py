"""A person answering a run's human-in-the-loop task, for `dag.test()` runs.

`dag.test()` parks a HITL task in AWAITING_INPUT until an answer is recorded in
the metadata database. This answers through the same function Airflow's REST
API route (PATCH .../hitlDetails) runs, with the same checks and the same
resume of the task, in a thread beside the run; only the HTTP layer is left out
(the standalone-Airflow test answers over HTTP).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

REVIEWER = "reviewer"


@dataclass
class Answerer:
    dag_id: str
    task_id: str
    option: str
    timeout: float = 600.0
    answered_run: list[str] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._answer, daemon=True)
        self.thread.start()

    def _answer(self) -> None:
        try:
            self._wait_and_answer()
        except BaseException as error:  # noqa: BLE001 - reported to the test
            self.errors.append(error)

    def _wait_and_answer(self) -> None:
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
        from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
        from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from airflow.utils.state import TaskInstanceState
        from sqlalchemy import select

        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            with create_session() as session:
                waiting = session.scalar(
                    select(TaskInstance).where(
                        TaskInstance.dag_id == self.dag_id,
                        TaskInstance.task_id == self.task_id,
                        TaskInstance.state == TaskInstanceState.AWAITING_INPUT,
                    )
                )
                if waiting is not None:
                    update_hitl_detail(
                        dag_id=self.dag_id,
                        dag_run_id=waiting.run_id,
                        task_id=self.task_id,
                        update_hitl_detail_payload=UpdateHITLDetailPayload(
                            chosen_options=[self.option]
                        ),
                        user=SimpleAuthManagerUser(username=REVIEWER, role="admin"),
                        session=session,
                        map_index=-1,
                    )
                    self.answered_run.append(waiting.run_id)
                    return
            time.sleep(0.5)
        raise TimeoutError(f"{self.dag_id}.{self.task_id} never asked")

    def done(self) -> str:
        """The run that was answered (raises what went wrong in the thread)."""
        self.thread.join(timeout=5)
        if self.errors:
            raise self.errors[0]
        assert self.answered_run, f"{self.task_id} was not answered"
        return self.answered_run[0]
