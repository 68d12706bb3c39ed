"""Event sources that feed the processing core (the file replay; Kafka lives in streams/)."""
