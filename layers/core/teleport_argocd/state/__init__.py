"""DynamoDB state: the per-output lease, registrations and run records.

One table, key ``pk`` (S) + ``sk`` (S), TTL attribute ``expires_at``. Every item of an
output shares ``pk = "output#<output name>"``, so an output's registrations or runs are
one Query and nothing here scans.

``sk = "lease"`` serializes the runs of one output and remembers triggers that arrive
during a run, so none is lost:

    holder           S     run id holding the lease; absent when free
    lease_expires    N     epoch seconds (microsecond precision); past it the holder is presumed dead
    lease_seconds    N     lease length, reused when `finish` hands the lease to a rerun
    acquired         S     when the holder took the lease
    reason           S     what triggered the holder's run
    pending          BOOL  a trigger arrived while the lease was held
    pending_reasons  SS    distinct reasons of those triggers, at most 10
    pending_since    S     when the first of them arrived
    last_run_id      S     the run that last released the lease
    last_finished    S     when it did

``sk = "lease#<i>/<n>"`` is the same for shard i of n, when a schedule splits a large output;
releasing one also stamps `last_run_id`/`last_finished` on the output's own lease item.

``sk = "reg#<teleport cluster>#<kube cluster>"`` is what we wrote for one cluster (the
names are attributes too; they are never parsed back out of the key). A run reads all of an
output's registrations once and writes back only those that changed, whole, in batches (a
renewal alone goes to a renewal ledger instead, below):

    teleport_cluster, kube_cluster, secret_namespace, secret_name, server         S
    labels           M     the cluster's labels when last planned
    fingerprint      S     digest of what was rendered, certificate left out: a change means a rewrite
    data_fingerprint S     the same without labels and annotations: unchanged, a rewrite keeps the certificate
    secret_uid, resource_version  S  the Secret as we last wrote it: the next write's precondition
    first_written, last_written, last_attempt, cert_expires, last_error_at        S
    cert_id          S     digest of the certificate written (never the certificate itself)
    unmatched_since  S     when the selectors stopped picking the cluster
    deleted_at       S     tombstone: when its Secret was pruned
    absence          S     why it is unmatched: vanished, deselected or deleted (sets its grace period)
    absence_banked   N     seconds of absence counted by runs that could have pruned
    absence_seen     S     the last such run that saved the clock; absent while the clock is paused
    refusals         N     runs in a row that found the Secret replaced or in the way
    relinquished_at  S     when those made us leave the Secret alone
    last_error       S     at most 1,000 characters; absent after a success
    matches          BOOL  the cluster still matches the output's selectors
    connection, connection_message  S  the last connection check (ok, forbidden, unreachable,
                           tls-error) and its reason; `connection_at` S when it was made
    cluster_name     S     the Secret's Argo CD cluster name as last written (Applications may name it)
    held_by          L     Argo CD Applications (namespace/name, of S) that held its pruning at the last check

``sk = "renewed#<bucket>"`` (bucket 0-7, a hash of the registration's two names) holds the
renewals of the registrations that fall in it (`state.renewals`). A renewal changes only when a
Secret was written, its certificate and its resourceVersion, so a run records those here, a few
items per output, instead of rewriting each registration item. Readers lay an entry over its
registration item while the entry is newer than the item's `last_attempt`:

    revision         N     each write adds one, on the condition that it has not moved meanwhile
    entries          M     "<teleport cluster>#<kube cluster>" -> "<written at>|<cert id>|<resourceVersion>"
    certs            M     cert id -> its expiry (S)

A hand edit of a registration item's certificate, resourceVersion or connection check is hidden
by its ledger entry while that is newer: set the item's `last_attempt` to now with the edit.

``sk = "run#<start>#<run id>"`` summarizes one run; the start time sorts, so newest
first is a reverse Query:

    run_id, trigger, started, finished                                             S
    duration_seconds N, counts M (of N), dry_run BOOL, errors L (of S, at most 50)
    expires_at       N     TTL; expired items are filtered on read, because DynamoDB
                           deletes them only eventually (and moto never does)

Times are ISO 8601 strings in UTC with microseconds, so they sort as text; epoch
Numbers appear only where a condition or TTL needs them.
"""

from teleport_argocd.state.leases import Lease
from teleport_argocd.state.registry import REGISTRY_MAX_AGE
from teleport_argocd.state.runs import RunRecord
from teleport_argocd.state.store import StateStore

__all__ = ["REGISTRY_MAX_AGE", "Lease", "RunRecord", "StateStore"]
