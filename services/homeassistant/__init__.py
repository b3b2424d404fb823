"""Home Assistant MQTT discovery for soundalert's alert categories and listening nodes."""

from services.homeassistant.discovery import (
    BINARY_SENSOR_DEVICE_CLASSES,
    Discovery,
    category_device_class,
)

__all__ = ["BINARY_SENSOR_DEVICE_CLASSES", "Discovery", "category_device_class"]
