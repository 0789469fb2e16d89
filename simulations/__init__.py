"""Simulations that drive the hms_bus: the Hurricane Ida relief day and friends."""
