#!/bin/bash
# /opt/kafka/bin/kafka-run-class.sh of the local cluster's Kafka image: runs
# one of Kafka's tool classes on the image's jars, as the official script
# does for the tools below.
# shellcheck disable=SC2086 # KAFKA_HEAP_OPTS is a list of flags
exec java ${KAFKA_HEAP_OPTS:--Xmx256m} -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.yaml \
    -cp '/opt/kafka/libs/*' "$@"
