#!/bin/bash
# /opt/kafka/bin/kafka-get-offsets.sh of the local cluster's Kafka image.
exec /opt/kafka/bin/kafka-run-class.sh org.apache.kafka.tools.GetOffsetShell "$@"
