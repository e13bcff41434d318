# -*- coding: utf-8 -*-
# Copyright: (c) 2026, fleetforge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """AWS credentials and client settings for controller-side plugins (plugin_utils/aws.py)."""

    DOCUMENTATION = r"""
options:
  aws_access_key:
    description:
      - AWS access key id. When no credentials are given, boto3 looks in its usual places
        (environment, shared credentials file, instance profile).
    type: str
    aliases: [access_key]
    env:
      - name: AWS_ACCESS_KEY_ID
  aws_secret_key:
    description:
      - AWS secret access key; required with O(aws_access_key).
    type: str
    aliases: [secret_key]
    env:
      - name: AWS_SECRET_ACCESS_KEY
  session_token:
    description:
      - AWS session token for temporary credentials.
    type: str
    aliases: [aws_session_token]
    env:
      - name: AWS_SESSION_TOKEN
  aws_profile:
    description:
      - Named profile from the shared AWS config/credentials files. Mutually exclusive with
        O(aws_access_key).
    type: str
    aliases: [profile]
    env:
      - name: AWS_PROFILE
  endpoint_url:
    description:
      - URL (C(http://) or C(https://)) used instead of the AWS endpoints for every service (a
        proxy, a VPC endpoint, or a local AWS API for tests).
    type: str
    aliases: [aws_endpoint_url]
    env:
      - name: AWS_ENDPOINT_URL
  assume_roles:
    description:
      - Roles to assume, one per account; every listed account is queried (the credentials above
        are only used to assume them). Each entry is a role ARN or a mapping with C(role_arn)
        and optional C(external_id).
      - Each host gets the C(account_id) of the account it was found in.
    type: list
    elements: raw
    default: []
  retry_mode:
    description:
      - botocore retry mode; both retry throttling (RequestLimitExceeded, Throttling) with
        exponential backoff, V(adaptive) also slows the client down.
    type: str
    choices: [standard, adaptive]
    default: standard
  retry_max_attempts:
    description:
      - Total attempts per API call (first try included).
    type: int
    default: 6
"""
