"""Delivery of alerts to people: Apprise, MQTT lights and bed shakers, signed webhooks."""
