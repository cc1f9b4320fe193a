"""The only Streamlit-aware part of cnnviz: shared widgets, session keys, the sidebar and page helpers.

Modules here may import streamlit; ``logic`` does not, so its functions are
tested as plain Python.
"""
