#!/bin/sh
# Entrypoint of the Pub/Sub emulator image: accepts the install guide's gcloud-style flag
# `--host-port=HOST:PORT` (what `gcloud beta emulators pubsub start` takes) and hands the emulator
# itself the `--host=HOST --port=PORT` it understands; any other argument is passed through.
# Without a host/port the emulator would listen on localhost:8080, unreachable from other pods.
set -eu
host=0.0.0.0
port=8085
for arg in "$@"; do
	shift
	case "$arg" in
	--host-port=*)
		value=${arg#--host-port=}
		host=${value%:*}
		port=${value##*:}
		;;
	--host=*) host=${arg#--host=} ;;
	--port=*) port=${arg#--port=} ;;
	*) set -- "$@" "$arg" ;;
	esac
done
exec /opt/pubsub-emulator/bin/cloud-pubsub-emulator --host="$host" --port="$port" "$@"
