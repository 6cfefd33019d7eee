"""The local-AWS harness every tool stands on: moto and the patches Aviary needs in it, the one reader
of a cloud assembly, the in-process deploy of an assembly into moto, the event source mappings and
the API Gateway events done locally. The local runtime, the drills and the blast-radius report are
front ends over it. Local emulation only: nothing here talks to a real AWS account.
"""
