// SPDX-License-Identifier: BSL-1.0
// pgcoro.hpp - everything pgcoro offers, in one include.
#ifndef PGCORO_HPP
#define PGCORO_HPP

#include <pgcoro/array.hpp>
#include <pgcoro/availability.hpp>
#include <pgcoro/backoff.hpp>
#include <pgcoro/bytea.hpp>
#include <pgcoro/check_health.hpp>
#include <pgcoro/chrono.hpp>
#include <pgcoro/circuit_breaker.hpp>
#include <pgcoro/close_reason.hpp>
#include <pgcoro/config_error.hpp>
#include <pgcoro/connect_config.hpp>
#include <pgcoro/connection.hpp>
#include <pgcoro/copy.hpp>
#include <pgcoro/database_url.hpp>
#include <pgcoro/error.hpp>
#include <pgcoro/events.hpp>
#include <pgcoro/fingerprint.hpp>
#include <pgcoro/health.hpp>
#include <pgcoro/histogram.hpp>
#include <pgcoro/json.hpp>
#include <pgcoro/lease.hpp>
#include <pgcoro/listener.hpp>
#include <pgcoro/logging_observer.hpp>
#include <pgcoro/lsn.hpp>
#include <pgcoro/member_status.hpp>
#include <pgcoro/notification.hpp>
#include <pgcoro/numeric.hpp>
#include <pgcoro/observe.hpp>
#include <pgcoro/observer.hpp>
#include <pgcoro/params.hpp>
#include <pgcoro/pipeline.hpp>
#include <pgcoro/pool.hpp>
#include <pgcoro/pool_config.hpp>
#include <pgcoro/pool_stats.hpp>
#include <pgcoro/prepared.hpp>
#include <pgcoro/profile.hpp>
#include <pgcoro/prometheus.hpp>
#include <pgcoro/replica_set.hpp>
#include <pgcoro/result.hpp>
#include <pgcoro/retry.hpp>
#include <pgcoro/secret.hpp>
#include <pgcoro/server_activity.hpp>
#include <pgcoro/settings.hpp>
#include <pgcoro/source_location.hpp>
#include <pgcoro/stats_collector.hpp>
#include <pgcoro/stream.hpp>
#include <pgcoro/transaction.hpp>
#include <pgcoro/uuid.hpp>
#include <pgcoro/validate.hpp>
#include <pgcoro/value_traits.hpp>
#include <pgcoro/version.hpp>
#include <pgcoro/with_timeout.hpp>

#endif // PGCORO_HPP
