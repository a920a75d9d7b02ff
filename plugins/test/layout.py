# -*- coding: utf-8 -*-
# Copyright: mlops.mlflow contributors
# Apache License 2.0 (see LICENSE)
"""Tests of the layout step: mlops.mlflow.ip_address (a literal IPv4 or IPv6 address)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.mlops.mlflow.plugins.filter.layout import is_ip_address


class TestModule(object):
    def tests(self):
        return {"ip_address": is_ip_address}
