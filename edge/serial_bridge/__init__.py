"""RP2040 serial bridge: board frames over USB serial -> the node's MQTT events and status."""
