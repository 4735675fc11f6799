"""Timer behaviours of the local host. Every function is disabled in local.settings.json; each test
enables the ones it needs with ``AzureWebJobs.<name>.Disabled=false`` in the environment."""

import datetime as dt
import os

import _testjournal
import azure.functions as func

app = func.FunctionApp()


def _record(name: str, timer: func.TimerRequest, **extra: object) -> None:
    _testjournal.record(
        fn=name,
        pid=os.getpid(),
        at=dt.datetime.now(dt.UTC).isoformat(),
        past_due=timer.past_due,
        status=dict(timer.schedule_status),
        schedule=dict(timer.schedule),
        **extra,
    )


@app.timer_trigger(arg_name="timer", schedule="%TickSchedule%")
def tick(timer: func.TimerRequest) -> None:
    _record("tick", timer)


@app.timer_trigger(arg_name="timer", schedule="00:00:01")
def timespan_tick(timer: func.TimerRequest) -> None:
    _record("timespan_tick", timer)


@app.timer_trigger(arg_name="timer", schedule="0 0 * * * *")
def hourly(timer: func.TimerRequest) -> None:
    _record("hourly", timer)


@app.timer_trigger(arg_name="timer", schedule="0 0 * * * *", run_on_startup=True)
def hourly_startup(timer: func.TimerRequest) -> None:
    _record("hourly_startup", timer)


@app.timer_trigger(arg_name="timer", schedule="*/1 * * * * *")
def failing(timer: func.TimerRequest) -> None:
    _record("failing", timer)
    raise RuntimeError("timer failure on purpose")


@app.timer_trigger(arg_name="timer", schedule="*/2 * * * * *")
async def pair(timer: func.TimerRequest) -> None:
    _record("pair", timer)


@app.timer_trigger(arg_name="timer", schedule="0 0 0 1 1 *", run_on_startup=True)
@app.retry(strategy="fixed_delay", max_retry_count="2", delay_interval="00:00:00.2")
def retried(timer: func.TimerRequest, context: func.Context) -> None:
    attempt = context.retry_context.retry_count
    _record("retried", timer, retry=attempt, max_retry=context.retry_context.max_retry_count)
    if attempt < 2:
        raise RuntimeError(f"attempt {attempt} fails on purpose")
