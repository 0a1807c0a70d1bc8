"""Log levels: the deployment's `LogLevel` for our loggers, WARNING for the libraries under them.

With `LoggingConfig.ApplicationLogLevel` the Lambda runtime sets the *root* logger to that level
(awslambdaric `_setup_logging`, from AWS_LAMBDA_LOG_LEVEL) before it imports the handler, and
Powertools' Logger takes the same level (AWS_LAMBDA_LOG_LEVEL first, then POWERTOOLS_LOG_LEVEL,
then LOG_LEVEL). Every library logger left at NOTSET inherits the root's level, so `LogLevel: DEBUG`
would make botocore log GetSecretValue response bodies (a kubeconfig with a client key) and signed
request headers (the session token), urllib3 and httpx their requests, and the kubernetes client
its bearer tokens. A debugging switch must not publish credentials to CloudWatch Logs.
"""

from __future__ import annotations

import logging

PROJECT_LOGGERS = ("teleport_argocd",)
# Libraries that log request or response contents at DEBUG or INFO; pinned whatever LogLevel says.
LIBRARY_LOGGERS = ("botocore", "boto3", "urllib3", "httpx", "httpcore", "grpc", "kubernetes", "s3transfer")

logger = logging.getLogger(__name__)


def configure(level: int | str) -> None:
    """Apply `level` (a name such as "DEBUG" or "WARN", or a number) to our loggers only.

    Called once by each handler at import, after the Lambda runtime and Powertools have set the
    root and their own levels. Any other library logger is limited by the root, raised here to
    WARNING unless `level` is stricter.
    """
    number = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(number, int):
        raise ValueError(f"unknown log level {level!r}")
    # Powertools maps Lambda's TRACE to NOTSET; for our loggers that means everything.
    number = number or logging.DEBUG
    for name in PROJECT_LOGGERS:
        logging.getLogger(name).setLevel(number)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger().setLevel(max(number, logging.WARNING))
    logger.debug(
        "log level %s for %s; %s and any other library at WARNING or above",
        logging.getLevelName(number),
        ", ".join(PROJECT_LOGGERS),
        ", ".join(LIBRARY_LOGGERS),
    )
