"""What every handler in `functions/*/app.py` sets up at import, once per execution environment.

Here rather than beside the handlers because each function folder is deployed on its own and the
layer is the only code they share. It holds Powertools objects and a boto3 session, no Lambda
types: the handlers keep their decorators and `LambdaContext`, and the rest of the core never
imports this module.
"""

from __future__ import annotations

from typing import NamedTuple

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

from teleport_argocd import logs


class Prologue(NamedTuple):
    """A handler's logger, metrics and AWS session, reused across warm invocations."""

    logger: Logger
    metrics: Metrics
    session: boto3.Session


def prologue() -> Prologue:
    """Powertools' JSON logger, with our loggers in the same format and at the deployment's level
    (libraries pinned lower: they log credentials at DEBUG, see `logs`); its metrics; one session."""
    logger = Logger()
    # The core logs through the standard library; give it the same JSON format and correlation id.
    copy_config_to_registered_loggers(source_logger=logger, include={"teleport_argocd"})
    logs.configure(logger.log_level)
    return Prologue(logger=logger, metrics=Metrics(), session=boto3.Session())
