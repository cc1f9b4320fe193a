"""cnnviz: the router. Registers every page and draws the shared sidebar.

Start with ``streamlit run app.py``. Nothing here imports torch, so the Home
page paints at once; pages that need torch import it themselves.
"""

import streamlit as st

from cnnviz.ui.nav import build_pages
from cnnviz.ui.sidebar import draw_sidebar

st.set_page_config(page_title="cnnviz: compare CNN architectures", page_icon=":material/neurology:", layout="wide")
page = st.navigation(build_pages())
draw_sidebar()
page.run()
