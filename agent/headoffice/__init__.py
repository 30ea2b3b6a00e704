"""The head-office side: receivers that reassemble, verify, store and acknowledge packets."""
