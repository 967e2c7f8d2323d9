"""The trained model downstream: evaluate it, package it, predict raw images, promote it to the registry."""
